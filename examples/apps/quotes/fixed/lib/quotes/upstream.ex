defmodule Quotes.Upstream do
  @moduledoc """
  The connection to the price feed, fixed: every request sets the idle
  `:state_timeout` again, which restarts it, so it fires only after 500 ms
  with no request. It is still cancelled on leaving `:connected`, as before.

  (An event timeout, `{:timeout, 500, :idle}`, set only on entering
  `:connected` would not do: the first request cancels it for good, and an
  idle connection would never be recycled. It too must be set with every
  request.)
  """
  @behaviour :gen_statem
  require Logger

  @idle_ms 500
  @reconnect_ms 100

  def start_link(_), do: :gen_statem.start_link({:local, __MODULE__}, __MODULE__, [], [])
  def child_spec(arg), do: %{id: __MODULE__, start: {__MODULE__, :start_link, [arg]}}

  @doc "The price of `pair`: `{:ok, price}`, or `{:error, :disconnected}` while reconnecting."
  def price(pair), do: :gen_statem.call(__MODULE__, {:price, pair})

  @impl true
  def callback_mode, do: [:state_functions, :state_enter]

  @impl true
  def init(_), do: {:ok, :disconnected, %{socket: nil, recycled: 0, served: 0}}

  def disconnected(:enter, _old, _data),
    do: {:keep_state_and_data, [{:state_timeout, @reconnect_ms, :reconnect}]}

  def disconnected(:state_timeout, :reconnect, data),
    do: {:next_state, :connected, %{data | socket: make_ref()}}

  def disconnected({:call, from}, {:price, _pair}, _data),
    do: {:keep_state_and_data, [{:reply, from, {:error, :disconnected}}]}

  def connected(:enter, _old, _data) do
    # recycle the connection once it has been idle for @idle_ms
    {:keep_state_and_data, [{:state_timeout, @idle_ms, :idle}]}
  end

  def connected(:state_timeout, :idle, data) do
    Logger.info("upstream idle for #{@idle_ms} ms, recycling the connection")
    {:next_state, :disconnected, %{data | socket: nil, recycled: data.recycled + 1}}
  end

  def connected({:call, from}, {:price, pair}, data) do
    # traffic: the connection is in use, so start the idle timer again
    {:keep_state, %{data | served: data.served + 1},
     [{:reply, from, {:ok, price_of(pair)}}, {:state_timeout, @idle_ms, :idle}]}
  end

  defp price_of("EUR/USD"), do: 1.0842
  defp price_of(_pair), do: nil
end
