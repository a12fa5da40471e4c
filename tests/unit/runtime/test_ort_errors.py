"""onnxruntime's error text is reduced to its cause, and the cause picks the fix."""

from __future__ import annotations

from pytest_onnxparity.runtime.ort_errors import MAX_CAUSE, cause, load_fix, run_fix

IR = (
    "[ONNXRuntimeError] : 1 : FAIL : Load model from /x/m.onnx failed:/onnxruntime_src/"
    "onnxruntime/core/graph/model.cc:256 onnxruntime::Model::Model(onnx::ModelProto&&, const "
    "onnxruntime::PathString&, const onnxruntime::IOnnxRuntimeOpSchemaRegistryList*, const "
    "onnxruntime::logging::Logger&, const onnxruntime::ModelOptions&) Unsupported model IR "
    "version: 99, max supported IR version: 14"
)
OPSET = (
    "[ONNXRuntimeError] : 1 : FAIL : Load model from m.onnx failed:/onnxruntime_src/onnxruntime/"
    "core/graph/model_load_utils.h:46 void onnxruntime::model_load_utils::ValidateOpsetForDomain("
    "const std::unordered_map<std::__cxx11::basic_string<char>, int>&, const onnxruntime::"
    "logging::Logger&, bool, const std::string&, int) ONNX Runtime only *guarantees* support for "
    "models stamped with official released onnx opset versions. Opset 99 is under development "
    "and support for this is limited. The operator schemas and or other functionality may change "
    "before next ONNX release and in this case ONNX Runtime will not guarantee backward "
    "compatibility. Current official support for domain ai.onnx is till opset 28."
)
BOUNDS = (
    "[ONNXRuntimeError] : 1 : FAIL : Exception during initialization: /onnxruntime_src/"
    "onnxruntime/core/optimizer/initializer.cc:51 onnxruntime::Initializer::Initializer(const "
    "onnx::TensorProto&, const std::filesystem::__cxx11::path&) [ONNXRuntimeError] : 1 : FAIL : "
    "tensorprotoutils.cc:2201 GetExtDataFromTensorProto External initializer: w offset: 10 size "
    "to read: 32 given file_length: 8 are out of bounds or can not be read in full."
)
RESHAPE = (
    "[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Reshape node. "
    "Name:'/r' Status Message: /onnxruntime_src/onnxruntime/core/providers/cpu/tensor/"
    "reshape_helper.h:84 onnxruntime::ReshapeHelper::ReshapeHelper(const onnxruntime::"
    "TensorShape&, onnxruntime::TensorShapeVector&, bool) size != 0 && (input_shape_size % size) "
    "== 0 was false. The input tensor cannot be reshaped to the requested shape. Input "
    "shape:{1,16}, requested shape:{-1,7}"
)


def test_the_cause_keeps_the_reason_and_drops_the_noise() -> None:
    assert cause(IR) == "Unsupported model IR version: 99, max supported IR version: 14"
    assert cause(BOUNDS).startswith("External initializer: w offset: 10 size to read: 32")
    assert cause(RESHAPE) == (
        "Reshape node '/r': The input tensor cannot be reshaped to the requested shape. Input "
        "shape:{1,16}, requested shape:{-1,7}"
    )


def test_a_long_cause_keeps_the_sentences_with_the_numbers() -> None:
    text = cause(OPSET)
    assert len(text) <= MAX_CAUSE
    assert "Opset 99 is under development" in text and "till opset 28." in text


def test_the_fix_follows_the_cause() -> None:
    assert "IR version <= 14" in load_fix(cause(IR))
    assert "opset <= 28" in load_fix(cause(OPSET))
    assert "(m.onnx.data)" in load_fix(cause(BOUNDS), ["m.onnx.data"])
    assert "--parity-dim NAME=SIZE" in run_fix(cause(RESHAPE), {"batch": 1, "T": 16})
    assert "T=16" in run_fix(cause(RESHAPE), {"batch": 1, "T": 16})
    assert "mobile" not in run_fix(cause(RESHAPE), None)
