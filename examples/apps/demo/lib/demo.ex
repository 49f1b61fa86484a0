defmodule Demo do
  @moduledoc """
  The seed scenario for BEAM Microscope: WorkerA sends a counter to WorkerB
  on every tick, under a supervision tree.

      Demo.start_updates(50)   # one update every 50 ms
      Demo.stop_updates()

  Somebody reports: "WorkerB isn't receiving all the updates from WorkerA."
  There is a real, two-part bug behind it, the kind that ships to
  production. Find it with a trace rather than by reading this file.
  """

  defdelegate start_updates(interval_ms \\ 100), to: Demo.WorkerA
  defdelegate stop_updates(), to: Demo.WorkerA

  @doc "Restart the whole app: fresh workers, counter back to zero."
  def reset do
    :ok = Application.stop(:demo)
    {:ok, _} = Application.ensure_all_started(:demo)
    :ok
  end

  @doc "WorkerB's current state."
  def worker_b_state, do: :sys.get_state(Demo.WorkerB)
end
