defmodule Awkward.Parser do
  @moduledoc "A tuple state: a binary buffer (not always UTF-8), keyword options, frames, a float."
  use GenServer

  def start_link(_), do: GenServer.start_link(__MODULE__, :ok, name: __MODULE__)

  @impl true
  def init(:ok), do: {:ok, {<<>>, [mode: :strict, sep: ?\n], [], 0.5}}

  @impl true
  def handle_info({:data, chunk}, {buffer, opts, frames, ratio}) when is_binary(chunk) do
    [rest | complete] = (buffer <> chunk) |> :binary.split(<<opts[:sep]>>, [:global]) |> Enum.reverse()
    {:noreply, {rest, opts, frames ++ Enum.reverse(complete), ratio * 1.5}}
  end
end
