defmodule Quotes.Upstream do
  @moduledoc """
  The connection to the price feed: a `:gen_statem` that is `:disconnected` or
  `:connected`. While disconnected it reconnects after 100 ms and answers
  requests with `{:error, :disconnected}`; once connected it should recycle the
  connection after 500 ms *without traffic*.

  The bug, as it is found in real connection code (the corpus class
  `statem_timeout`, tests/erlang/bugs/bug_statem_timeout.erl): the idle timer is
  a `:state_timeout` armed on entering `:connected`, and each request returns
  `:keep_state` in the belief that traffic restarts it. It does not. gen_statem
  has three timeouts, each cancelled by something different:

    * `{:state_timeout, ms, msg}`: runs until the *state* changes (or another
      state_timeout is set). Events handled in the same state do not touch it.
    * `{:timeout, ms, msg}` (an event timeout): cancelled by *any* event, and
      not re-armed by itself.
    * `{{:timeout, name}, ms, msg}` (a generic timeout): runs until it fires,
      is set again, or is cancelled by name, whatever the state does.

  So `:idle` fires 500 ms after every connect, however busy the connection is.
  The fix is in `fixed/lib/quotes/upstream.ex`.
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
    # traffic: the connection is in use, so it is not idle
    {:keep_state, %{data | served: data.served + 1}, [{:reply, from, {:ok, price_of(pair)}}]}
  end

  defp price_of("EUR/USD"), do: 1.0842
  defp price_of(_pair), do: nil
end
