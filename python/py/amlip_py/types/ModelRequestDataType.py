"""AML-IP's ``ModelRequestDataType``: a payload of bytes, made from str or bytes."""
from amlip_py._payload import Payload


class ModelRequestDataType(Payload):
    """``ModelRequestDataType(message=None)``: str or bytes; ``to_string()``, ``to_vector()``, ``data()``,
    ``data_size()``."""
