"""The run's configuration: the project's config file, tolerances and their precedence."""
