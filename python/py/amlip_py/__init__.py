"""AML-IP v0.3's Python API (``amlip_py``) on amlip: the same modules, classes, constructor
arguments, callbacks and listener classes, so a program written for AML-IP runs unchanged and
its nodes talk to AML-IP's C++ nodes and to amlip's on the same domain.

Modules: ``amlip_py.node.<Class>`` holds the node class ``<Class>`` (and its listener classes);
``amlip_py.types.<Class>`` the data type ``<Class>``. AML-IP's WAN nodes (``ClientNode``,
``ServerNode``, ``RepeaterNode``) and the FIWARE node need eProsima's DDS Router and are not
provided.
"""
