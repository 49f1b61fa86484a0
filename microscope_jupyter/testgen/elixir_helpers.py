"""The Elixir a generated ExUnit test carries besides its steps: starting the
module from a recorded state, stand-ins for recorded pids, and the barrier
that says whether a process survived (``exunit.py`` writes the steps)."""

from __future__ import annotations

__all__ = ["START", "STAND_IN", "BARRIER"]

START = """
  # The module's own callbacks, entered with the recorded state: init/1 is not
  # called (the recording does not hold its argument) and no name is taken.
  defp start_recorded(module, state) do
    start_supervised!(%{id: module, restart: :temporary,
                        start: {:proc_lib, :start_link, [__MODULE__, :enter_recorded, [module, state]]}})
  end

  @doc false
  def enter_recorded(module, state) do
    :proc_lib.init_ack({:ok, self()})
    :gen_server.enter_loop(module, [], state)
  end""".split("\n")

STAND_IN = """
  # A live process in the place of one the recording held (what is sent to it
  # is asserted through the send trace).
  defp stand_in(_tag), do: spawn_link(fn -> sink() end)

  defp sink do
    receive do
      _ -> sink()
    end
  end""".split("\n")

BARRIER = """
  # The state once the process has handled what it was sent, or why it could not.
  defp barrier(pid) do
    {:ok, :sys.get_state(pid)}
  catch
    :exit, reason -> {:crashed, reason}
  end""".split("\n")
