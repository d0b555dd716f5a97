"""AML-IP's nodes: ``amlip_py.node.<Class>`` holds ``<Class>`` and its listener classes."""
