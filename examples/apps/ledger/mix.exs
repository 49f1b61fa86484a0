defmodule Ledger.MixProject do
  use Mix.Project

  # No dependencies: it must build with nothing but Elixir.
  def project do
    [app: :ledger, version: "0.1.0", elixir: "~> 1.14", deps: [], start_permanent: false]
  end

  def application do
    [extra_applications: [:logger], mod: {Ledger.Application, []}]
  end
end
