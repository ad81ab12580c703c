"""One mapping of a failed ONNX Runtime child to l2v's typed errors, shared by export validation and the gate."""
from l2v.errors import ResourceError, ValidationError
from l2v.runtime.onnx_child import ChildError, as_typed_error


def test_a_killed_child_is_a_resource_error_with_its_hint():
    e = as_typed_error(ChildError("the ONNX Runtime child was killed (SIGKILL)", killed=True, hint="free memory"),
                       "the variant could not run: ")
    assert isinstance(e, ResourceError) and "killed" in str(e) and e.hint == "free memory"
    assert "could not run" not in str(e)  # the prefix is for graphs that failed, not for a kill


def test_any_other_failure_is_a_validation_error_with_the_callers_prefix():
    e = as_typed_error(ChildError("Non-zero status code returned while running MatMul node"),
                       "the variant could not run: ")
    assert isinstance(e, ValidationError)
    assert str(e).startswith("the variant could not run: Non-zero status code")
