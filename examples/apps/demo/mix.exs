defmodule Demo.MixProject do
  use Mix.Project

  # No Hex dependencies: it must build with nothing but Elixir (hex.pm is out
  # of reach). The one dependency is BEAM Microscope's hooks package, by path:
  # $BEAM_MICROSCOPE_HOOKS when set (mic.demo() sets it), else the checkout's
  # elixir_hooks/ (the same relative place in an installed wheel).
  def project do
    [app: :demo, version: "0.1.0", elixir: "~> 1.14", start_permanent: false,
     deps: [{:beam_microscope, path: hooks()}]]
  end

  def application do
    [extra_applications: [:logger], mod: {Demo.Application, []}]
  end

  defp hooks do
    System.get_env("BEAM_MICROSCOPE_HOOKS") || Path.expand("../../../elixir_hooks", __DIR__)
  end
end
