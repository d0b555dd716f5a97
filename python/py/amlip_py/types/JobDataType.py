"""AML-IP's ``JobDataType``: a payload of bytes, made from str or bytes."""
from amlip_py._payload import Payload


class JobDataType(Payload):
    """``JobDataType(message=None)``: str or bytes; ``to_string()``, ``to_vector()``, ``data()``,
    ``data_size()``."""
