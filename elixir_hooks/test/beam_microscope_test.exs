defmodule BeamMicroscopeTest do
  # The agent's line sink is one key for the whole VM: these tests take turns.
  use ExUnit.Case, async: false
  require BeamMicroscope

  @agent_dir Path.expand("../agent", __DIR__)
  @k_line 19

  setup do
    :persistent_term.erase(BeamMicroscope.sink_key())
    on_exit(fn -> :persistent_term.erase(BeamMicroscope.sink_key()) end)
  end

  describe "with no agent on the node" do
    test "a call is a no-op that does not even evaluate its argument" do
      assert BeamMicroscope.inspect_line(send(self(), :evaluated)) == :ok
      assert BeamMicroscope.inspect_line("label", send(self(), :evaluated)) == :ok
      refute_received :evaluated
    end

    test "a sink left by an agent that died does not crash the caller" do
      dead = spawn(fn -> :ok end)
      ref = Process.monitor(dead)
      assert_receive {:DOWN, ^ref, :process, ^dead, _}
      :persistent_term.put(BeamMicroscope.sink_key(), dead)
      x = 42
      assert BeamMicroscope.inspect_line("after", binding()) == :ok
      assert x == 42
    end
  end

  describe "with the agent loaded and a recording running" do
    setup do
      # Every module of the agent, the facade (microscope_agent) last, as a notebook loads them.
      for {module, source, beam} <- agent_beams() do
        {:module, ^module} = :code.load_binary(module, String.to_charlist(source), beam)
      end

      on_exit(fn ->
        for {module, _, _} <- Enum.reverse(agent_beams()) do
          :code.delete(module)
          :code.purge(module)
        end
      end)
    end

    test "each call arrives as a line event with its binding, function, file and line" do
      worker = spawn_link(&worker/0)
      {:ok, agent, _info} = start_agent(%{procs: [worker]})
      send(worker, {:go, 7, self()})
      assert_receive {:done, line}, 5_000
      {:ok, _} = stop_agent(agent)

      [{{:pid, pid}, {:mfa, mfa}, {:aux, ^line}, payload}] = line_events(collect_batches())
      assert pid == worker
      assert mfa == {__MODULE__, :worker, 0}
      {label, file, binding} = :erlang.binary_to_term(payload)
      assert label == "sum taken"
      assert file == __ENV__.file
      assert Keyword.take(binding, [:n, :total]) == [n: 7, total: 14]
    end

    test "the sink is the recording's while it runs and gone after it stops" do
      {:ok, agent, %{tracer: tracer}} = start_agent(%{procs: [self()]})
      assert :persistent_term.get(BeamMicroscope.sink_key(), nil) == tracer
      {:ok, _} = stop_agent(agent)
      assert :persistent_term.get(BeamMicroscope.sink_key(), nil) == nil
    end

    test "a recording with lines: false leaves the sink alone" do
      {:ok, agent, _} = start_agent(%{procs: [self()], lines: false})
      assert :persistent_term.get(BeamMicroscope.sink_key(), nil) == nil
      {:ok, _} = stop_agent(agent)
    end

    test "a newer recording takes the sink and hands it back when it stops" do
      {:ok, first, %{tracer: first_tracer}} = start_agent(%{procs: [self()]})
      {:ok, second, %{tracer: second_tracer}} = start_agent(%{procs: [self()]})
      assert :persistent_term.get(BeamMicroscope.sink_key(), nil) == second_tracer
      {:ok, _} = stop_agent(second)
      assert :persistent_term.get(BeamMicroscope.sink_key(), nil) == first_tracer
      {:ok, _} = stop_agent(first)
      assert :persistent_term.get(BeamMicroscope.sink_key(), nil) == nil
    end
  end

  # Compiled once per run (a second each time), loaded for each test as a notebook would.
  defp agent_beams do
    case :persistent_term.get({__MODULE__, :beams}, nil) do
      nil ->
        beams =
          for source <- Path.wildcard(Path.join(@agent_dir, "*.erl")) do
            {:ok, module, beam} =
              :compile.file(String.to_charlist(source), [:binary, :return_errors])

            {module, source, beam}
          end
          |> Enum.sort_by(fn {module, _, _} -> module == :microscope_agent end)

        :persistent_term.put({__MODULE__, :beams}, beams)
        beams

      beams ->
        beams
    end
  end

  def worker do
    receive do
      {:go, n, test} ->
        total = n * 2
        BeamMicroscope.inspect_line("sum taken", binding()); line = __ENV__.line
        send(test, {:done, line})
    end
  end

  # Through apply: the agent is loaded at run time, so the compiler cannot see it.
  # No state hooks: they calibrate their cost at each start, and nothing here has state.
  defp start_agent(opts), do: apply(:microscope_agent, :start, [self(), Map.put(opts, :state, false)])
  defp stop_agent(agent), do: apply(:microscope_agent, :stop, [agent])

  # Every batch the agent sent us, up to the one after its stop.
  defp collect_batches(acc \\ []) do
    receive do
      {:microscope_batch, _tracer, _no, _events, headers, payloads, defs, _seen, _dropped} ->
        collect_batches([{headers, payloads, defs} | acc])
    after
      500 -> Enum.reverse(acc)
    end
  end

  # The 40-byte headers (microscope_jupyter/store/schema.py) of kind line, with
  # their ids resolved through the batch's definitions.
  defp line_events(batches) do
    ids = Map.new(Enum.flat_map(batches, fn {_, _, defs} -> defs end))

    for {headers, payloads, _} <- batches,
        <<kind, _flags, _pad::16, pid::little-32, _peer::little-32, mfa::little-32,
          _ts::little-signed-64, off::little-32, len::little-32, aux::little-signed-64 <- headers>>,
        kind == @k_line do
      {{:pid, Map.get(ids, pid)}, {:mfa, Map.get(ids, mfa)}, {:aux, aux},
       binary_part(payloads, off, len)}
    end
  end
end
