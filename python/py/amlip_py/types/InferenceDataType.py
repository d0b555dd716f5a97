"""AML-IP's ``InferenceDataType``: a payload of bytes, made from str or bytes."""
from amlip_py._payload import Payload


class InferenceDataType(Payload):
    """``InferenceDataType(message=None)``: str or bytes; ``to_string()``, ``to_vector()``, ``data()``,
    ``data_size()``."""
