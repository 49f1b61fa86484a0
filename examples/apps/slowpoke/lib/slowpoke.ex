defmodule Slowpoke do
  @moduledoc """
  A metrics pipeline with a planted bug, for notebook 02 ("why is it slow?").

  `Slowpoke.Clock` sends `{:tick, n}` to `Slowpoke.Ingest` every 4 ms. Ingest
  counts each tick in microseconds, but on every 25th tick it rebuilds its
  report from scratch inside the callback: a big sort that takes hundreds of
  milliseconds and churns the heap. Ticks keep arriving meanwhile, so the
  mailbox backs up and everything downstream of Ingest waits.
  """

  def start_ticks, do: Slowpoke.Clock.start_ticks()
  def stop_ticks, do: Slowpoke.Clock.stop_ticks()
end

defmodule Slowpoke.Application do
  @moduledoc false
  use Application

  def start(_type, _args) do
    children = [Slowpoke.Ingest, Slowpoke.Clock]
    Supervisor.start_link(children, strategy: :one_for_one, name: Slowpoke.Supervisor)
  end
end
