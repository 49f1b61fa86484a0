defmodule Ledger do
  @moduledoc """
  A bank's ledger, for the investigate notebook. Three tellers take deposits
  from a stream of customers and credit them to a shared ETS table of
  balances (`Ledger.Balances` owns it). Every deposit is counted, so the
  ledger can be reconciled: `Ledger.totals/0` returns the deposits made and
  the sum of the balances, which should be equal.
  """

  @doc "{deposited, balance}: the sum of all deposits made, and of all balances."
  def totals, do: GenServer.call(Ledger.Balances, :totals)
end

defmodule Ledger.Application do
  @moduledoc false
  use Application

  def start(_type, _args) do
    tellers = for n <- 1..3, do: Supervisor.child_spec({Ledger.Teller, n}, id: {:teller, n})

    Supervisor.start_link([Ledger.Balances | tellers] ++ [Ledger.Customers],
      strategy: :one_for_one, name: Ledger.Supervisor)
  end
end
