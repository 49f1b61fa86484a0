defmodule BeamMicroscope.MixProject do
  use Mix.Project

  # Nothing but Elixir and OTP: a user adds it by path, and Hex is never asked.
  def project do
    [app: :beam_microscope, version: "0.1.0", elixir: "~> 1.14", deps: [],
     description: "Line-level snapshots for BEAM Microscope: inspect_line(binding())"]
  end

  def application, do: [extra_applications: []]
end
