defmodule Awkward.MixProject do
  use Mix.Project

  # GenServers with awkward state, for the generated ExUnit tests: no dependencies.
  def project, do: [app: :awkward, version: "0.1.0", elixir: "~> 1.14", deps: []]
  def application, do: [extra_applications: [:logger], mod: {Awkward.Application, []}]
end
