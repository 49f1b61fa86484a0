defmodule Relay do
  @moduledoc """
  A sensor relay with a planted bug, for notebook 03 ("where did my messages go?").

  `Relay.Feeder` reads a sensor every 20 ms and sends `{:reading, n, value}`
  to `Relay.Sink`, whose pid it looked up once, in `init/1`. Shortly after
  boot the sink crashes on a reading it does not expect (the fifth one, a
  calibration reading) and its supervisor restarts it. The feeder never
  notices: it keeps sending to the dead pid, and every reading since is lost,
  silently. By the time anyone looks, the crash is long past.
  """

  def readings, do: Relay.Sink.count()
end

defmodule Relay.Application do
  @moduledoc false
  use Application

  def start(_type, _args) do
    children = [Relay.Sink, Relay.Feeder]
    Supervisor.start_link(children, strategy: :one_for_one, name: Relay.Supervisor)
  end
end
