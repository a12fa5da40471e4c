"""Speed and size budgets: latency and real-time factor, measured and judged."""
