# Idiom: Task.Supervisor, Elixir's own (OTP 25 + Elixir only): a GenServer
# runs jobs with Task.Supervisor.async_nolink and collects them with
# Task.yield(task, 20) || Task.shutdown(task) (slow jobs are shut down), and
# fires side jobs with Task.Supervisor.start_child (ending :normal).
# Mirrors: background work from a GenServer that must survive a failing
# task (webhooks, emails), the pattern the Task.Supervisor docs recommend.
# Traffic: a job every ~5 ms, awaited (one in 8 too slow: 20 ms, then shut
# down) and a fire-and-forget task with each: ~130 of each a second.
defmodule Idioms.TaskSupervisor do
  use GenServer

  @tasks :idioms_task_supervisor_tasks
  @runner :idioms_task_supervisor_runner

  def start do
    {:ok, sup} = Task.Supervisor.start_link(name: @tasks)
    Process.unlink(sup)
    {:ok, _} = GenServer.start(__MODULE__, [], name: @runner)
    :ok
  end

  def stop do
    GenServer.stop(@runner)
    GenServer.stop(@tasks)
  end

  def procs, do: for(n <- [@tasks, @runner], p = Process.whereis(n), do: p)

  @impl true
  def init([]) do
    Process.send_after(self(), :tick, 5)
    {:ok, %{n: 0, done: 0, shut: 0}}
  end

  @impl true
  def handle_info(:tick, %{n: n} = s) do
    Process.send_after(self(), :tick, 5)
    task = Task.Supervisor.async_nolink(@tasks, fn -> job(n) end)
    {:ok, _} = Task.Supervisor.start_child(@tasks, fn -> :erlang.phash2({:audit, n}) end)

    s =
      case Task.yield(task, 20) || Task.shutdown(task) do
        {:ok, _} -> %{s | done: s.done + 1}
        nil -> %{s | shut: s.shut + 1}
      end

    {:noreply, %{s | n: n + 1}}
  end

  defp job(n) when rem(n, 8) == 0, do: Process.sleep(5000)
  defp job(n), do: :erlang.phash2(Enum.to_list(1..(50 + rem(n, 50))))
end
