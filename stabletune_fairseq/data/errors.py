"""The one error type of bad input: it always names the file, the line and the reason."""


class InputFormatError(ValueError):
    def __init__(self, path, line: int | None, reason: str):
        self.path, self.line, self.reason = str(path), line, reason
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")
