"""Getting readings in: input formats, the publishing client, the simulator."""
from producers.formats import parse_body, parse_file_lines
from producers.publisher import Publisher

__all__ = ["Publisher", "parse_body", "parse_file_lines"]
