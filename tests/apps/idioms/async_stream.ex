# Idiom: Task.async_stream, Elixir's own (OTP 25 + Elixir only): a periodic
# GenServer refreshes 16 prices every 25 ms with
# Task.async_stream(skus, &fetch/1, max_concurrency: 4, ordered: true), half
# the fetches waiting a millisecond (the HTTP call they stand for).
# Mirrors: crawlers, price/feed refreshers, bulk API calls with bounded
# concurrency.
# Traffic: ~640 stream workers/s.
defmodule Idioms.AsyncStream do
  use GenServer

  @job :idioms_async_stream_refresher
  @prices :idioms_async_stream_prices

  def start do
    {:ok, _} = GenServer.start(__MODULE__, :prices, name: @prices)
    {:ok, _} = GenServer.start(__MODULE__, :refresher, name: @job)
    :ok
  end

  def stop, do: Enum.each([@job, @prices], &GenServer.stop/1)

  def procs, do: for(n <- [@job, @prices], p = Process.whereis(n), do: p)

  @impl true
  def init(:prices), do: {:ok, %{}}

  def init(:refresher) do
    Process.send_after(self(), :refresh, 25)
    {:ok, 0}
  end

  @impl true
  def handle_call({:price, sku}, _from, prices), do: {:reply, Map.get(prices, sku, 100), prices}

  @impl true
  def handle_cast({:prices, new}, prices), do: {:noreply, Map.merge(prices, new)}

  @impl true
  def handle_info(:refresh, round) do
    Process.send_after(self(), :refresh, 25)

    fresh =
      Enum.map(1..16, &rem(round * 16 + &1, 200))
      |> Task.async_stream(&fetch/1, max_concurrency: 4, ordered: true)
      |> Map.new(fn {:ok, {sku, price}} -> {sku, price} end)

    GenServer.cast(@prices, {:prices, fresh})
    {:noreply, round + 1}
  end

  defp fetch(sku) when rem(sku, 2) == 0 do
    Process.sleep(1)
    {sku, sku * 3}
  end

  defp fetch(sku), do: {sku, GenServer.call(@prices, {:price, sku}) + 1}
end
