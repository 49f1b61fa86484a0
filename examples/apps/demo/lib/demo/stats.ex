defmodule Demo.Stats do
  @moduledoc "What the application itself believes: updates sent and received."
  use Agent

  def start_link(_opts), do: Agent.start_link(fn -> %{sent: 0, received: 0} end, name: __MODULE__)

  def sent, do: Agent.update(__MODULE__, &Map.update!(&1, :sent, fn n -> n + 1 end))
  def received, do: Agent.update(__MODULE__, &Map.update!(&1, :received, fn n -> n + 1 end))
  def get, do: Agent.get(__MODULE__, & &1)
end
