"""AML-IP's data types: ``amlip_py.types.<Class>`` holds ``<Class>``."""
