defmodule BeamMicroscope do
  @moduledoc """
  Line-level snapshots for BEAM Microscope: a process's local variables at a
  line of your choosing, something no trace flag can see.

      require BeamMicroscope

      def handle_info({:update, n}, state) do
        total = state.count + n
        BeamMicroscope.inspect_line("after total", binding())
        ...
      end

  While a notebook records the node (`s.trace(...)`, `%%trace`, a flight
  recorder), each call sends one `line` event to the agent: the binding, the
  module, function and arity, the file and line, a label and a timestamp. In
  Python, `s.lines()` lists them, and time travel and the source view show
  the latest binding of each process.

  When nothing records, a call costs one `:persistent_term.get/2` and a
  comparison: `binding()` is not even evaluated, because `inspect_line` is a
  macro and the argument is only evaluated inside the active branch (see
  `bench/inspect_line.py` for the cost on your machine).

  ## Safe anywhere

    * Without the agent (it is loaded diskless by a notebook, so a release
      normally has none) the key is absent: a no-op.
    * In a release this module is compiled in like any other; it starts
      nothing, registers nothing and holds no state.
    * It never raises: sending to a pid cannot fail, and a sink left by an
      agent that died is a pid too (the message is dropped by the runtime).
    * Only a recording with `lines: true` (the default) sets the sink; the
      newest such recording on the node receives the events, and when it
      stops the previous one (if still running) receives them again.
  """

  # The agent writes this key while a recording takes line events
  # (microscope_agent: line_sink_push/1). Its value is the tracer's pid, an
  # immediate, so replacing or erasing it never starts a global GC.
  @sink_key :microscope_line_sink

  @doc """
  Records `binding` (usually `binding()`) at this line while a recording runs.
  Any other term (a map, the state, a number) is recorded as one variable,
  `value`: in Python, `s.lines()` shows the binding `{"value": term}`.
  Returns `:ok`.
  """
  defmacro inspect_line(binding) do
    expand(nil, binding, __CALLER__)
  end

  @doc """
  As `inspect_line/1`, with a `label` (any term, usually a string) to find
  the event by: `s.lines(label="after total")`.
  """
  defmacro inspect_line(label, binding) do
    expand(label, binding, __CALLER__)
  end

  @doc false
  def sink_key, do: @sink_key

  defp expand(label, binding, caller) do
    {function, arity} = caller.function || {nil, 0}
    where = Macro.escape({caller.module, function, arity})

    quote do
      case :persistent_term.get(unquote(Macro.escape(@sink_key)), nil) do
        nil ->
          :ok

        # In line, not a call into this module: a recorded process must not be
        # seen loading BeamMicroscope (or sending anything but this one message,
        # which the agent leaves out of the trace).
        sink ->
          send(sink, {:microscope_line, self(), :erlang.monotonic_time(), unquote(label),
                      unquote(where), unquote(caller.file), unquote(caller.line),
                      unquote(binding)})
          :ok
      end
    end
  end
end
