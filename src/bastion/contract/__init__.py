"""OpenAPI contract enforcement: the API's own OpenAPI document, enforced both ways.

Load once (:func:`load_spec`), compile each operation once (:func:`compile_operation`), then
per request call :meth:`OperationContract.validate_request` and per response
:meth:`OperationContract.filter_response`. See docs/contract.md.
"""

from bastion.contract.compiled import (
    ContractLimits,
    FilteredResponse,
    OperationContract,
    ValidatedRequest,
    compile_operation,
    compile_spec,
)
from bastion.contract.responses import ResponseContractViolation
from bastion.contract.sensitive import SensitiveFinding
from bastion.contract.spec import ApiSpec, Operation, load_spec
from bastion.contract.versioning import deprecation_headers

__all__ = [
    "ApiSpec",
    "ContractLimits",
    "FilteredResponse",
    "Operation",
    "OperationContract",
    "ResponseContractViolation",
    "SensitiveFinding",
    "ValidatedRequest",
    "compile_operation",
    "compile_spec",
    "deprecation_headers",
    "load_spec",
]
