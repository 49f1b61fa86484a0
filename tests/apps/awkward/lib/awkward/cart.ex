defmodule Awkward.Cart do
  @moduledoc "A struct for a state, with a timestamp; checkout of an empty cart raises."
  use GenServer

  defstruct items: [], total: 0, currency: "EUR", updated_at: nil, notes: %{}

  def start_link(_), do: GenServer.start_link(__MODULE__, :ok, name: __MODULE__)
  def add(sku, qty, price), do: GenServer.call(__MODULE__, {:add, sku, qty, price})
  def clear, do: GenServer.call(__MODULE__, :clear)
  def checkout, do: GenServer.call(__MODULE__, :checkout)

  @impl true
  def init(:ok), do: {:ok, %__MODULE__{}}

  @impl true
  def handle_call({:add, sku, qty, price}, _from, cart) do
    cart = %{cart | items: [{sku, qty, price} | cart.items], total: cart.total + qty * price,
                    updated_at: DateTime.utc_now(), notes: Map.put(cart.notes, sku, [qty: qty])}
    {:reply, {:ok, cart.total}, cart}
  end

  def handle_call(:clear, _from, cart), do: {:reply, :ok, %{cart | items: [], total: 0}}

  def handle_call(:checkout, _from, %__MODULE__{items: []}), do: raise(ArgumentError, "empty cart")
end
