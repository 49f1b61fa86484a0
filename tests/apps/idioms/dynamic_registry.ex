# Idiom: Registry + DynamicSupervisor, Elixir's own (OTP 25 + Elixir only):
# one GenServer per conversation, started on demand under a DynamicSupervisor
# (restart: :temporary) and named {:via, Registry, {reg, key}}. A router
# keeps 20 conversations open and sends each 5 events then :done (the session
# stops :normal) or, one in four, :cancel (it stops :shutdown). Keys are
# never reused, so nothing is ever sent to a session that is going away.
# Mirrors: chat rooms, game sessions, per-device processes in Phoenix apps.
# Traffic: an event every ms (~1000 casts/s, ~200 sessions/s).
defmodule Idioms.DynamicRegistry do
  use GenServer

  @reg :idioms_dynamic_registry_names
  @sup :idioms_dynamic_registry_sessions
  @router :idioms_dynamic_registry_router

  def start do
    {:ok, reg} = Registry.start_link(keys: :unique, name: @reg)
    {:ok, sup} = DynamicSupervisor.start_link(strategy: :one_for_one, name: @sup)
    Process.unlink(reg)
    Process.unlink(sup)
    partitions = for {_, p, _, _} <- Supervisor.which_children(reg), is_pid(p), do: p
    :persistent_term.put({__MODULE__, :partitions}, partitions)
    Process.register(spawn(fn -> route(1, :queue.new()) end), @router)
    :ok
  end

  def stop do
    ref = Process.monitor(@router)
    send(@router, :stop)
    receive do: ({:DOWN, ^ref, _, _, _} -> :ok)
    GenServer.stop(@sup)
    GenServer.stop(@reg)
  end

  def procs do
    partitions = :persistent_term.get({__MODULE__, :partitions}, [])
    for(n <- [@reg, @sup, @router], p = Process.whereis(n), do: p) ++
      Enum.filter(partitions, &Process.alive?/1)
  end

  def start_link(key), do: GenServer.start_link(__MODULE__, key, name: via(key))
  defp via(key), do: {:via, Registry, {@reg, key}}

  @impl true
  def init(key), do: {:ok, %{key: key, events: []}}

  @impl true
  def handle_cast({:event, e}, s), do: {:noreply, %{s | events: [e | s.events]}}
  def handle_cast(:done, s), do: {:stop, :normal, s}
  def handle_cast(:cancel, s), do: {:stop, :shutdown, s}

  defp route(next, open) do
    receive do
      :stop -> :ok
    after
      1 ->
        {open, next} =
          if :queue.len(open) < 20 do
            spec = %{id: __MODULE__, start: {__MODULE__, :start_link, [next]}, restart: :temporary}
            {:ok, _} = DynamicSupervisor.start_child(@sup, spec)
            {:queue.in({next, 5}, open), next + 1}
          else
            {open, next}
          end

        {{:value, {key, left}}, rest} = :queue.out(open)
        GenServer.cast(via(key), {:event, left})

        cond do
          left > 1 -> route(next, :queue.in({key, left - 1}, rest))
          rem(key, 4) == 0 -> GenServer.cast(via(key), :cancel); route(next, rest)
          true -> GenServer.cast(via(key), :done); route(next, rest)
        end
    end
  end
end
