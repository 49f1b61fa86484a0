defmodule Awkward.Hub do
  @moduledoc "Subscribers by pid with their monitor refs; publishes to each."
  use GenServer

  def start_link(_), do: GenServer.start_link(__MODULE__, :ok, name: __MODULE__)
  def subscribe(pid), do: GenServer.call(__MODULE__, {:subscribe, pid})
  def publish(topic, payload), do: GenServer.cast(__MODULE__, {:publish, topic, payload})

  @impl true
  def init(:ok), do: {:ok, %{subs: %{}, topics: [news: 0, sport: 0], last: nil}}

  @impl true
  def handle_call({:subscribe, pid}, _from, state) do
    ref = Process.monitor(pid)
    {:reply, {:ok, ref}, %{state | subs: Map.put(state.subs, pid, %{ref: ref, since: System.system_time(:millisecond)})}}
  end

  @impl true
  def handle_cast({:publish, topic, payload}, state) do
    for {pid, _} <- state.subs, do: send(pid, {:published, topic, payload})
    topics = Keyword.update!(state.topics, topic, &(&1 + 1))
    {:noreply, %{state | topics: topics, last: {topic, byte_size(payload), payload}}}
  end
end
