defmodule Demo.WorkerB do
  @moduledoc "Keeps the latest counter from WorkerA and how many updates it has seen."
  use GenServer
  require BeamMicroscope
  def start_link(opts), do: GenServer.start_link(__MODULE__, opts, name: __MODULE__)

  @impl true
  def init(_opts), do: {:ok, %{count: 0, last: nil}}

  @impl true
  # The fix: a checkpoint is an update too.
  def handle_info({:update, n, :checkpoint}, state), do: handle_info({:update, n}, state)

  def handle_info({:update, n}, state) do
    Demo.Stats.received()
    count = state.count + 1
    BeamMicroscope.inspect_line("update taken", binding())
    {:noreply, %{state | count: count, last: n}}
  end
end
