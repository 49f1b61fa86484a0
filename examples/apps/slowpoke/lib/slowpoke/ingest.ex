defmodule Slowpoke.Ingest do
  @moduledoc "Counts ticks; every 25th rebuilds the report in the callback (the bug)."
  use GenServer

  def start_link(_), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)

  @impl true
  def init(_), do: {:ok, %{count: 0, report: []}}

  @impl true
  def handle_info({:tick, n}, state) do
    state = %{state | count: state.count + 1}

    if rem(n, 25) == 0 do
      # The bug: a full rebuild, synchronously, in the hot path.
      {:noreply, %{state | report: rebuild_report(n)}}
    else
      {:noreply, state}
    end
  end

  defp rebuild_report(n) do
    1..300_000
    |> Enum.map(fn i -> {:erlang.phash2({i, n}), i} end)
    |> Enum.sort()
    |> Enum.take(10)
  end
end
