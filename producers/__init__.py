"""Getting readings in: input formats, the publishing client, the simulator."""
from harewatch.producers.formats import parse_body, parse_file_lines
from harewatch.producers.publisher import Publisher

__all__ = ["Publisher", "parse_body", "parse_file_lines"]
