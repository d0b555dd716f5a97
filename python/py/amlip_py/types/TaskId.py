"""AML-IP's ``TaskId``: an int."""


class TaskId(int):
    """A job's task id (an ``int``)."""
