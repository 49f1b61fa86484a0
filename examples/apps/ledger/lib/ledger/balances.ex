defmodule Ledger.Balances do
  @moduledoc """
  Owns the `:ledger_balances` table (public, so tellers write it directly,
  without a call per deposit) and counts the deposits the tellers report.
  """
  use GenServer

  @accounts for n <- 1..4, do: "acct-#{n}"

  def start_link(_), do: GenServer.start_link(__MODULE__, :ok, name: __MODULE__)
  def accounts, do: @accounts

  @doc "The anti-fraud rule, kept in one place: no balance above a million."
  def check_limit(account, balance), do: GenServer.call(__MODULE__, {:check_limit, account, balance})

  @impl true
  def init(:ok) do
    :ets.new(:ledger_balances, [:named_table, :public, :set])
    for account <- @accounts, do: :ets.insert(:ledger_balances, {account, 0})
    {:ok, %{deposited: 0}}
  end

  @impl true
  def handle_cast({:deposited, amount}, state),
    do: {:noreply, %{state | deposited: state.deposited + amount}}

  @impl true
  def handle_call({:check_limit, _account, balance}, _from, state),
    do: {:reply, if(balance <= 1_000_000, do: :ok, else: {:error, :over_limit}), state}

  def handle_call(:totals, _from, state) do
    balance = :ets.foldl(fn {_account, b}, sum -> sum + b end, 0, :ledger_balances)
    {:reply, {state.deposited, balance}, state}
  end
end
