"""Names and terms as an Elixir (default) or Erlang developer would write them."""

from .names import format_mfa, format_mfa_term, format_module, format_name

__all__ = ["format_mfa", "format_mfa_term", "format_module", "format_name"]
