"""AML-IP's ``ModelReplyDataType``: a payload of bytes, made from str or bytes."""
from amlip_py._payload import Payload


class ModelReplyDataType(Payload):
    """``ModelReplyDataType(message=None)``: str or bytes; ``to_string()``, ``to_vector()``, ``data()``,
    ``data_size()``."""
