#!/usr/bin/env python3
"""A fake BlueZ (org.bluez) for coachd's end-to-end Bluetooth tests.

It serves, on the bus DBUS_SYSTEM_BUS_ADDRESS points at, what btleplug/bluez-async use of
BlueZ 5's D-Bus API (doc/org.bluez.Adapter.rst, Device.rst, GattService.rst,
GattCharacteristic.rst): ObjectManager on /, one adapter /org/bluez/hci0, and heart-rate
straps that appear when discovery starts (InterfacesAdded from /, as bluetoothd sends it).
Each strap has the Heart Rate service with Heart Rate Measurement (notify, with its CCC
descriptor) and Body Sensor Location (read). Connect sets Connected and
ServicesResolved; StartNotify sets Notifying; a notification is a PropertiesChanged of
Value on the characteristic's path.

The test drives it with lines on stdin and reads what happened on stdout:
  notify ADDR HEX     send a Heart Rate Measurement (prints "sent ADDR" or "dropped ADDR")
  disconnect ADDR     the strap drops the link (Connected, ServicesResolved, Notifying false)
  refuse ADDR 0|1     make Connect fail (1) or succeed again (0)
  quit
  prints: ready | discovery on | connect ADDR | subscribed ADDR | read ADDR | refused ADDR

Usage: fake_bluez.py ADDR[=NAME] ...
"""

import asyncio
import sys

from dbus_next import BusType, Message, MessageType, Variant
from dbus_next.aio import MessageBus
from dbus_next.service import PropertyAccess, ServiceInterface, dbus_property, method, signal  # noqa: F401
from dbus_next.errors import DBusError

ADAPTER = "/org/bluez/hci0"
HR_SERVICE = "0000180d-0000-1000-8000-00805f9b34fb"
HR_MEASUREMENT = "00002a37-0000-1000-8000-00805f9b34fb"
BODY_SENSOR_LOCATION = "00002a38-0000-1000-8000-00805f9b34fb"
CCC = "00002902-0000-1000-8000-00805f9b34fb"


def say(*words):
    print(*words, flush=True)


class Adapter(ServiceInterface):
    def __init__(self, fake):
        super().__init__("org.bluez.Adapter1")
        self.fake = fake
        self._powered = False
        self._discovering = False

    @method()
    def SetDiscoveryFilter(self, properties: "a{sv}"):  # noqa: F821
        self.fake.filter = properties

    @method()
    def StartDiscovery(self):
        if self.fake.discovery_clients:
            raise DBusError("org.bluez.Error.InProgress", "Operation already in progress")
        if not self._powered:
            raise DBusError("org.bluez.Error.NotReady", "Resource Not Ready")
        self.fake.discovery_clients += 1
        self._discovering = True
        self.emit_properties_changed({"Discovering": True})
        say("discovery on")
        self.fake.discover()

    @method()
    def StopDiscovery(self):
        self.fake.discovery_clients = 0
        self._discovering = False
        self.emit_properties_changed({"Discovering": False})

    @method()
    def RemoveDevice(self, device: "o"):  # noqa: F821
        pass

    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> "s":  # noqa: F821
        return "00:1A:7D:DA:71:13"

    @dbus_property(access=PropertyAccess.READ)
    def AddressType(self) -> "s":  # noqa: F821
        return "public"

    @dbus_property(access=PropertyAccess.READ)
    def Name(self) -> "s":  # noqa: F821
        return "coachd-test"

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> "s":  # noqa: F821
        return "coachd-test"

    @dbus_property(access=PropertyAccess.READ)
    def Modalias(self) -> "s":  # noqa: F821
        return "usb:v1D6Bp0246d0541"

    @dbus_property()
    def Powered(self) -> "b":  # noqa: F821
        return self._powered

    @Powered.setter
    def Powered(self, value: "b"):  # noqa: F821
        self._powered = value
        self.emit_properties_changed({"Powered": value})

    @dbus_property(access=PropertyAccess.READ)
    def Discovering(self) -> "b":  # noqa: F821
        return self._discovering

    @dbus_property(access=PropertyAccess.READ)
    def UUIDs(self) -> "as":  # noqa: F821
        return []


class Device(ServiceInterface):
    def __init__(self, strap):
        super().__init__("org.bluez.Device1")
        self.strap = strap
        self.connected = False
        self.resolved = False

    @method()
    async def Connect(self):
        if self.strap.refused:
            say("refused", self.strap.address)
            raise DBusError("org.bluez.Error.Failed", "le-connection-abort-by-local")
        say("connect", self.strap.address)
        self.connected = True
        self.resolved = True
        self.emit_properties_changed({"Connected": True})
        self.emit_properties_changed({"ServicesResolved": True})

    @method()
    def Disconnect(self):
        self.strap.drop_link()

    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> "s":  # noqa: F821
        return self.strap.address

    @dbus_property(access=PropertyAccess.READ)
    def AddressType(self) -> "s":  # noqa: F821
        return "random"

    @dbus_property(access=PropertyAccess.READ)
    def Name(self) -> "s":  # noqa: F821
        return self.strap.name

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> "s":  # noqa: F821
        return self.strap.name

    @dbus_property(access=PropertyAccess.READ)
    def Adapter(self) -> "o":  # noqa: F821
        return ADAPTER

    @dbus_property(access=PropertyAccess.READ)
    def Appearance(self) -> "q":  # noqa: F821
        return 0x0341  # heart rate belt

    @dbus_property(access=PropertyAccess.READ)
    def UUIDs(self) -> "as":  # noqa: F821
        return [HR_SERVICE]

    @dbus_property(access=PropertyAccess.READ)
    def RSSI(self) -> "n":  # noqa: F821
        return self.strap.rssi

    @dbus_property(access=PropertyAccess.READ)
    def Paired(self) -> "b":  # noqa: F821
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Bonded(self) -> "b":  # noqa: F821
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Connected(self) -> "b":  # noqa: F821
        return self.connected

    @dbus_property(access=PropertyAccess.READ)
    def ServicesResolved(self) -> "b":  # noqa: F821
        return self.resolved

    @dbus_property(access=PropertyAccess.READ)
    def Trusted(self) -> "b":  # noqa: F821
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Blocked(self) -> "b":  # noqa: F821
        return False

    @dbus_property(access=PropertyAccess.READ)
    def LegacyPairing(self) -> "b":  # noqa: F821
        return False


class Service(ServiceInterface):
    def __init__(self, device_path):
        super().__init__("org.bluez.GattService1")
        self.device_path = device_path

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> "s":  # noqa: F821
        return HR_SERVICE

    @dbus_property(access=PropertyAccess.READ)
    def Primary(self) -> "b":  # noqa: F821
        return True

    @dbus_property(access=PropertyAccess.READ)
    def Device(self) -> "o":  # noqa: F821
        return self.device_path


class Characteristic(ServiceInterface):
    def __init__(self, strap, service_path, uuid, flags, value=b""):
        super().__init__("org.bluez.GattCharacteristic1")
        self.strap = strap
        self.service_path = service_path
        self.uuid = uuid
        self.flags = flags
        self.value = value
        self.notifying = False

    @method()
    def ReadValue(self, options: "a{sv}") -> "ay":  # noqa: F821
        if not self.strap.device.connected:
            raise DBusError("org.bluez.Error.Failed", "Not connected")
        say("read", self.strap.address)
        return self.value

    @method()
    def StartNotify(self):
        if not self.strap.device.connected:
            raise DBusError("org.bluez.Error.Failed", "Not connected")
        if "notify" not in self.flags:
            raise DBusError("org.bluez.Error.NotSupported", "Operation is not supported")
        self.notifying = True
        self.emit_properties_changed({"Notifying": True})
        say("subscribed", self.strap.address)

    @method()
    def StopNotify(self):
        self.notifying = False
        self.emit_properties_changed({"Notifying": False})

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> "s":  # noqa: F821
        return self.uuid

    @dbus_property(access=PropertyAccess.READ)
    def Service(self) -> "o":  # noqa: F821
        return self.service_path

    @dbus_property(access=PropertyAccess.READ)
    def Flags(self) -> "as":  # noqa: F821
        return self.flags

    @dbus_property(access=PropertyAccess.READ)
    def Notifying(self) -> "b":  # noqa: F821
        return self.notifying

    @dbus_property(access=PropertyAccess.READ)
    def Value(self) -> "ay":  # noqa: F821
        return self.value

    def notify(self, value):
        self.value = value
        self.emit_properties_changed({"Value": value})


class Descriptor(ServiceInterface):
    def __init__(self, char_path):
        super().__init__("org.bluez.GattDescriptor1")
        self.char_path = char_path

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> "s":  # noqa: F821
        return CCC

    @dbus_property(access=PropertyAccess.READ)
    def Characteristic(self) -> "o":  # noqa: F821
        return self.char_path


class Strap:
    def __init__(self, address, name, rssi):
        self.address = address
        self.name = name
        self.rssi = rssi
        self.refused = False
        self.path = ADAPTER + "/dev_" + address.replace(":", "_")
        self.device = Device(self)
        service = self.path + "/service000c"
        self.service = (service, Service(self.path))
        self.hrm_path = service + "/char000d"
        self.hrm = Characteristic(self, service, HR_MEASUREMENT, ["notify"])
        self.ccc = (self.hrm_path + "/desc000f", Descriptor(self.hrm_path))
        self.bsl = (service + "/char0010", Characteristic(self, service, BODY_SENSOR_LOCATION, ["read"], b"\x01"))

    def objects(self):
        return [(self.path, self.device), self.service, (self.hrm_path, self.hrm), self.ccc, self.bsl]

    def drop_link(self):
        if self.hrm.notifying:
            self.hrm.notifying = False
            self.hrm.emit_properties_changed({"Notifying": False})
        self.device.connected = False
        self.device.resolved = False
        self.device.emit_properties_changed({"ServicesResolved": False})
        self.device.emit_properties_changed({"Connected": False})


class Fake:
    def __init__(self, bus, straps):
        self.bus = bus
        self.straps = straps
        self.filter = {}
        self.discovery_clients = 0
        self.discovered = False

    def interfaces_added(self, path, interface):
        """InterfacesAdded from the ObjectManager at /, as bluetoothd sends it."""

        def done(iface, values, _path, err):
            if err is not None:
                return
            body = {iface.name: {k: v for k, v in values.items()}}
            self.bus.send(
                Message.new_signal(
                    path="/",
                    interface="org.freedesktop.DBus.ObjectManager",
                    member="InterfacesAdded",
                    signature="oa{sa{sv}}",
                    body=[path, body],
                )
            )

        ServiceInterface._get_all_property_values(interface, done, path)

    def discover(self):
        if self.discovered:
            return
        self.discovered = True
        for strap in self.straps:
            for path, interface in strap.objects():
                self.bus.export(path, interface)
            for path, interface in strap.objects():
                self.interfaces_added(path, interface)


async def delivered(bus):
    """Returns once the bus has everything sent before: a round trip to the bus itself
    (messages go out in order), so "sent" is printed only for what really left."""
    await bus.call(
        Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            member="GetId",
        )
    )


async def main(args):
    straps = []
    for i, arg in enumerate(args):
        address, _, name = arg.partition("=")
        straps.append(Strap(address.upper(), name or "HRM " + address[-5:], -50 - 5 * i))
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    # dbus-next announces exports itself, from the object's own path; bluetoothd does it
    # from /, which is what clients listen for. Only ours go out.
    bus._emit_interface_added = lambda path, interface: None
    fake = Fake(bus, straps)
    bus.export(ADAPTER, Adapter(fake))
    await bus.request_name("org.bluez")
    say("ready")
    by_address = {s.address: s for s in straps}
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            break
        words = line.decode().split()
        if not words:
            continue
        cmd, rest = words[0], words[1:]
        if cmd == "quit":
            break
        strap = by_address.get(rest[0].upper()) if rest else None
        if strap is None:
            say("error", "unknown device in", line.decode().strip())
            continue
        if cmd == "notify":
            if strap.device.connected and strap.hrm.notifying:
                strap.hrm.notify(bytes.fromhex(rest[1]))
                await delivered(bus)
                say("sent", strap.address)
            else:
                say("dropped", strap.address)
        elif cmd == "disconnect":
            strap.drop_link()
            await delivered(bus)
            say("disconnected", strap.address)
        elif cmd == "refuse":
            strap.refused = rest[1] == "1"
            say("ok")
        else:
            say("error", "unknown command", cmd)
    bus.disconnect()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
