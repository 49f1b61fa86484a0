defmodule Demo.MixProject do
  use Mix.Project

  # No dependencies: it must build with nothing but Elixir (hex.pm is out of reach).
  def project do
    [app: :demo, version: "0.1.0", elixir: "~> 1.14", deps: [], start_permanent: false]
  end

  def application do
    [extra_applications: [:logger], mod: {Demo.Application, []}]
  end
end
