defmodule Ledger.Customers do
  @moduledoc "Customers arriving at the tellers: a deposit of 1 every millisecond or so."
  use GenServer

  def start_link(_), do: GenServer.start_link(__MODULE__, :ok, name: __MODULE__)

  @impl true
  def init(:ok) do
    :timer.send_interval(2, :arrive)
    {:ok, 0}
  end

  @impl true
  def handle_info(:arrive, n) do
    # a few customers at once, at whichever teller is free
    for k <- 0..2 do
      account = Enum.at(Ledger.Balances.accounts(), rem(n + k, 2))
      GenServer.cast(:"Elixir.Ledger.Teller#{rem(n + k, 3) + 1}", {:deposit, account, 1})
    end

    {:noreply, n + 3}
  end
end
