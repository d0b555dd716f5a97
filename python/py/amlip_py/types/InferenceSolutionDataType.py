"""AML-IP's ``InferenceSolutionDataType``: a payload of bytes, made from str or bytes."""
from amlip_py._payload import Payload


class InferenceSolutionDataType(Payload):
    """``InferenceSolutionDataType(message=None)``: str or bytes; ``to_string()``, ``to_vector()``, ``data()``,
    ``data_size()``."""
