defmodule Quotes do
  @moduledoc """
  A price ticker with a planted bug, for notebook 06 ("why does it keep
  disconnecting?").

  `Quotes.Ticker` asks `Quotes.Upstream`, the connection to a price feed (a
  `:gen_statem`), for the EUR/USD price every 20 ms. The firewall in front of
  the feed drops connections that stay idle, so the connection recycles itself
  (closes and reopens it) after 500 ms without traffic. It recycles every
  600 ms instead, busy or not, and each time the ticker's requests fail for
  100 ms with `{:error, :disconnected}`. See `Quotes.Upstream` for why.
  """

  @doc "What the ticker got back so far: `%{ok: n, failed: n}`."
  def stats, do: Quotes.Ticker.stats()

  @doc "Stop asking for prices (the connection then really is idle)."
  def pause, do: Quotes.Ticker.pause()

  @doc "Ask again, every 20 ms."
  def resume, do: Quotes.Ticker.resume()
end

defmodule Quotes.Application do
  @moduledoc false
  use Application

  def start(_type, _args) do
    children = [Quotes.Upstream, Quotes.Ticker]
    Supervisor.start_link(children, strategy: :one_for_one, name: Quotes.Supervisor)
  end
end
