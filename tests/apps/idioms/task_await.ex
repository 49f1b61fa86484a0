# Idiom: Task.async / Task.await, Elixir's own (OTP 25 + Elixir only).
# A search GenServer answers each call by fanning the query out to three
# backends with Task.async and collecting them with Task.await inside
# handle_call; a plain client process does Task.async |> Task.await in a
# loop. Task.await ends with Process.demonitor(ref, [:flush]): the DOWN of a
# finished task leaves the mailbox without ever being received.
# Mirrors: Phoenix controllers and GenServers fanning out with Task.async.
# Traffic: 2 clients searching every 10 ms (3 tasks each), one awaiting loop
# every 4 ms (~850 tasks/s).
defmodule Idioms.TaskAwait do
  use GenServer

  @search :idioms_task_await_search
  @index :idioms_task_await_index
  @load :idioms_task_await_load

  def start do
    {:ok, _} = GenServer.start(__MODULE__, :index, name: @index)
    {:ok, _} = GenServer.start(__MODULE__, :search, name: @search)
    start_load([fn -> client(0) end, fn -> client(1) end, fn -> awaiter(0) end])
    :ok
  end

  def stop do
    stop_load()
    Enum.each([@search, @index], &GenServer.stop/1)
  end

  def procs, do: for(n <- [@search, @index, @load], p = Process.whereis(n), do: p)

  defp client(n) do
    receive do
      :stop -> :ok
    after
      10 ->
        {:ok, [_, _, _]} = GenServer.call(@search, {:search, rem(n, 40)})
        client(n + 1)
    end
  end

  defp awaiter(n) do
    receive do
      :stop -> :ok
    after
      4 ->
        _ = Task.async(fn -> :erlang.phash2({n, make_ref()}) end) |> Task.await()
        awaiter(n + 1)
    end
  end

  @impl true
  def init(:index), do: {:ok, Map.new(0..39, &{&1, &1 * &1})}
  def init(:search), do: {:ok, %{searches: 0}}

  @impl true
  def handle_call({:search, q}, _from, %{searches: n} = s) do
    hits =
      [:titles, :bodies, :tags]
      |> Enum.map(fn b -> Task.async(fn -> backend(b, q) end) end)
      |> Enum.map(&Task.await/1)

    {:reply, {:ok, hits}, %{s | searches: n + 1}}
  end

  def handle_call({:lookup, q}, _from, index), do: {:reply, Map.get(index, q, 0), index}

  defp backend(:titles, q), do: GenServer.call(@index, {:lookup, q})
  defp backend(:bodies, q), do: Enum.sum(1..(q + 10))
  defp backend(:tags, q), do: Integer.to_string(q)

  defp start_load(loops) do
    pid = spawn(fn ->
      Enum.each(loops, &spawn_link/1)
      receive do: (:stop -> exit(:shutdown))
    end)
    Process.register(pid, @load)
  end

  defp stop_load do
    case Process.whereis(@load) do
      nil -> :ok
      pid ->
        ref = Process.monitor(pid)
        send(pid, :stop)
        receive do: ({:DOWN, ^ref, _, _, _} -> :ok)
    end
  end
end
