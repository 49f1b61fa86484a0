defmodule Awkward do
  @moduledoc """
  Three GenServers whose state no literal can simply spell: pids and refs in
  nested maps, structs with timestamps, binaries that are not UTF-8, charlists,
  keyword lists, tuples and floats.

      Awkward.drive()   # the scenario: subscribe, publish, add to the cart, parse
                        # frames; the cart crashes on an empty checkout, the
                        # parser on :eof
  """

  def drive do
    test = self()
    subscriber = spawn(fn -> send(test, :subscribed); listen() end)
    {:ok, _ref} = Awkward.Hub.subscribe(subscriber)
    Awkward.Hub.publish(:news, <<"héllo", 255, 0>>)
    Awkward.Hub.publish(:sport, "goal")
    {:ok, 6} = Awkward.Cart.add("apple", 2, 3)
    {:ok, 11} = Awkward.Cart.add(~c"pear", 1, 5)
    :ok = Awkward.Cart.clear()
    try do
      Awkward.Cart.checkout()
    catch
      :exit, _ -> :crashed
    end

    send(Awkward.Parser, {:data, <<"ab\nc", 200>>})
    send(Awkward.Parser, {:data, "d\n"})
    send(Awkward.Parser, {:data, :eof})
    subscriber
  end

  defp listen do
    receive do
      _ -> listen()
    end
  end
end

defmodule Awkward.Application do
  @moduledoc false
  use Application

  def start(_type, _args) do
    children = [Awkward.Hub, Awkward.Cart, Awkward.Parser]
    Supervisor.start_link(children, strategy: :one_for_one, name: Awkward.Supervisor)
  end
end
