defmodule Quotes.Ticker do
  @moduledoc "The dashboard's ticker: asks for a price every 20 ms and counts the answers."
  use GenServer

  @every_ms 20

  def start_link(_), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)
  def stats, do: GenServer.call(__MODULE__, :stats)
  def pause, do: GenServer.call(__MODULE__, {:polling, false})
  def resume, do: GenServer.call(__MODULE__, {:polling, true})

  @impl true
  def init(_) do
    Process.send_after(self(), :tick, @every_ms)
    {:ok, %{ok: 0, failed: 0, polling: true}}
  end

  @impl true
  def handle_call(:stats, _from, state), do: {:reply, Map.take(state, [:ok, :failed]), state}

  def handle_call({:polling, polling}, _from, state), do: {:reply, :ok, %{state | polling: polling}}

  @impl true
  def handle_info(:tick, state) do
    Process.send_after(self(), :tick, @every_ms)

    cond do
      not state.polling -> {:noreply, state}
      match?({:ok, _}, Quotes.Upstream.price("EUR/USD")) -> {:noreply, %{state | ok: state.ok + 1}}
      true -> {:noreply, %{state | failed: state.failed + 1}}
    end
  end
end
