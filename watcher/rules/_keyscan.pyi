# Types of the C extension watcher/rules/_keyscan.c (built by `pip install`).
from array import array

class KeyScanner:
    def __init__(
        self,
        n_keys: int,
        edge_start: array[int],
        edge_label: bytes,
        edge_target: array[int],
        node_key: array[int],
        field_key_start: tuple[array[int], ...],
        field_key_clause: tuple[array[int], ...],
        clause_rule_start: array[int],
        clause_rule: array[int],
        rule_need: array[int],
        near_key: array[int],
        near_distance: array[int],
        near_entry_start: array[int],
        near_entry: array[int],
    ) -> None: ...
    def scan(
        self, texts: tuple[str | None, ...], extra: tuple[list[int] | None, ...] | None = None, /
    ) -> tuple[list[int], bytes]: ...

def outermost(text: str, keys: tuple[str, ...], /) -> list[int]: ...
