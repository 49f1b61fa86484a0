defmodule Relay.Sink do
  @moduledoc "Counts readings. Has no clause for a calibration reading (the first bug)."
  use GenServer

  def start_link(_), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)
  def count, do: GenServer.call(__MODULE__, :count)

  @impl true
  def init(_), do: {:ok, %{count: 0}}

  @impl true
  def handle_call(:count, _from, state), do: {:reply, state.count, state}

  @impl true
  def handle_info({:reading, _n, value}, state) when is_number(value) do
    {:noreply, %{state | count: state.count + 1}}
  end
end
