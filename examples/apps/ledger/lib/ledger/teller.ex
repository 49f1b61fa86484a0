defmodule Ledger.Teller do
  @moduledoc "Credits deposits to the shared balances table, one customer at a time."
  use GenServer

  def start_link(n), do: GenServer.start_link(__MODULE__, n, name: :"Elixir.Ledger.Teller#{n}")

  @impl true
  def init(n), do: {:ok, %{teller: n, served: 0}}

  @impl true
  def handle_cast({:deposit, account, amount}, state) do
    [{^account, balance}] = :ets.lookup(:ledger_balances, account)
    new_balance = balance + amount
    :ok = Ledger.Balances.check_limit(account, new_balance)
    :ets.insert(:ledger_balances, {account, new_balance})
    GenServer.cast(Ledger.Balances, {:deposited, amount})
    {:noreply, %{state | served: state.served + 1}}
  end
end
