"""Turn-taking between the training arms: one arm runs at a time, one epoch per turn."""

import threading


class Turns:
    """Lets one arm run at a time, in a fixed order, one epoch per turn."""

    def __init__(self, names: list[str]):
        self.order = list(names)
        self.current = 0
        self.condition = threading.Condition()

    def wait_for(self, name: str) -> None:
        with self.condition:
            self.condition.wait_for(lambda: self.order[self.current] == name)

    def done(self, name: str, finished: bool = False) -> None:
        with self.condition:
            position = self.order.index(name)
            if finished:
                self.order.remove(name)
                self.current = position % len(self.order) if self.order else 0
            else:
                self.current = (position + 1) % len(self.order)
            self.condition.notify_all()
