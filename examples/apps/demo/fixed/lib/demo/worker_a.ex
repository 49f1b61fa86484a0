defmodule Demo.WorkerA do
  @moduledoc "Counts ticks and tells WorkerB about every one of them (fixed: sends to the name)."
  use GenServer

  def start_link(opts), do: GenServer.start_link(__MODULE__, opts, name: __MODULE__)

  def start_updates(interval_ms \\ 100), do: GenServer.call(__MODULE__, {:start, interval_ms})
  def stop_updates, do: GenServer.call(__MODULE__, :stop)

  @impl true
  def init(_opts) do
    # The fix: address WorkerB by its registered name, so a restarted WorkerB is found.
    {:ok, %{counter: 0, interval: nil, worker_b: Demo.WorkerB}}
  end

  @impl true
  def handle_call({:start, interval_ms}, _from, state) do
    Process.send_after(self(), :tick, interval_ms)
    {:reply, :ok, %{state | interval: interval_ms}}
  end

  def handle_call(:stop, _from, state), do: {:reply, :ok, %{state | interval: nil}}

  @impl true
  def handle_info(:tick, %{interval: nil} = state), do: {:noreply, state}

  def handle_info(:tick, state) do
    counter = state.counter + 1

    # Every tenth update is a checkpoint that WorkerB can use to verify its count.
    update =
      if rem(counter, 10) == 0,
        do: {:update, counter, :checkpoint},
        else: {:update, counter}

    send(state.worker_b, update)
    Demo.Stats.sent()
    Process.send_after(self(), :tick, state.interval)
    {:noreply, %{state | counter: counter}}
  end
end
