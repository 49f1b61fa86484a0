defmodule Slowpoke.Clock do
  @moduledoc "Sends `{:tick, n}` to Slowpoke.Ingest every 4 ms once started."
  use GenServer

  def start_link(_), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)
  def start_ticks, do: GenServer.call(__MODULE__, :start)
  def stop_ticks, do: GenServer.call(__MODULE__, :stop)

  @impl true
  def init(_), do: {:ok, %{n: 0, running: false}}

  @impl true
  def handle_call(:start, _from, state) do
    Process.send_after(self(), :tick, 4)
    {:reply, :ok, %{state | running: true}}
  end

  def handle_call(:stop, _from, state), do: {:reply, :ok, %{state | running: false}}

  @impl true
  def handle_info(:tick, %{running: false} = state), do: {:noreply, state}

  def handle_info(:tick, state) do
    send(Slowpoke.Ingest, {:tick, state.n + 1})
    Process.send_after(self(), :tick, 4)
    {:noreply, %{state | n: state.n + 1}}
  end
end
