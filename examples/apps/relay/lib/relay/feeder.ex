defmodule Relay.Feeder do
  @moduledoc "Sends readings to the sink pid it looked up at start (the second bug)."
  use GenServer

  def start_link(_), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)

  @impl true
  def init(_) do
    Process.send_after(self(), :read, 20)
    # Looked up once: saves a name lookup per reading.
    {:ok, %{n: 0, sink: Process.whereis(Relay.Sink)}}
  end

  @impl true
  def handle_info(:read, state) do
    n = state.n + 1
    # Every so often the sensor calibrates and reports :calibrating instead of a number.
    value = if n == 5, do: :calibrating, else: rem(n * 37, 100)
    send(state.sink, {:reading, n, value})
    Process.send_after(self(), :read, 20)
    {:noreply, %{state | n: n}}
  end
end
