#!/usr/bin/env python3
"""A fake BlueZ (org.bluez) for coachd's end-to-end Bluetooth tests.

It serves, on the bus DBUS_SYSTEM_BUS_ADDRESS points at, what btleplug/bluez-async use of
BlueZ 5's D-Bus API (doc/org.bluez.Adapter.rst, Device.rst, GattService.rst,
GattCharacteristic.rst): ObjectManager on /, one adapter /org/bluez/hci0, and sensors
that appear when discovery starts (InterfacesAdded from /, as bluetoothd sends it).
Each sensor has one service with its measurement characteristic (notify, with its CCC
descriptor); a heart-rate strap also has Body Sensor Location (read). The kinds:
  hr         Heart Rate 0x180D, Heart Rate Measurement 0x2A37 (the default)
  treadmill  Fitness Machine 0x1826, Treadmill Data 0x2ACD
  bike       Fitness Machine 0x1826, Indoor Bike Data 0x2AD2
  rower      Fitness Machine 0x1826, Rower Data 0x2AD1
  csc        Cycling Speed and Cadence 0x1816, CSC Measurement 0x2A5B
  rsc        Running Speed and Cadence 0x1814, RSC Measurement 0x2A53
  power      Cycling Power 0x1818, Cycling Power Measurement 0x2A63
Connect sets Connected and ServicesResolved; StartNotify sets Notifying; a notification
is a PropertiesChanged of Value on the characteristic's path.

As bluetoothd does, it refuses a connection beyond the controller's limit
(--max-connections N) with org.bluez.Error.Failed "le-connection-abort-by-local", and
any connection while the adapter is powered off with org.bluez.Error.NotReady. Powering
the adapter off drops every link and stops discovery. A device that goes out of range
leaves the object tree (InterfacesRemoved from /, as BlueZ drops a temporary device) and
comes back with InterfacesAdded when it is in range again and discovery is on.

The test drives it with lines on stdin and reads what happened on stdout:
  notify ADDR HEX     send a measurement (prints "sent ADDR" or "dropped ADDR")
  disconnect ADDR     the device drops the link (Connected, ServicesResolved, Notifying false)
  refuse ADDR 0|1     make Connect fail (1) or succeed again (0)
  limit N             the controller's connection limit (0: none)
  remove ADDR         out of range: the link drops and the device leaves the tree
  add ADDR            back in range: back in the tree (now, or when discovery starts)
  power 0|1           the adapter powered off (by rfkill, a user) or on
  quit
  prints: ready | discovery on | connect ADDR | subscribed ADDR | read ADDR |
          refused ADDR | removed ADDR | added ADDR | powered 0|1

Usage: fake_bluez.py [--max-connections N] ADDR[=NAME][/KIND] ...
"""

import asyncio
import logging
import sys

from dbus_next import BusType, Message, MessageType, Variant
from dbus_next.aio import MessageBus
from dbus_next.service import PropertyAccess, ServiceInterface, dbus_property, method, signal  # noqa: F401
from dbus_next.errors import DBusError

ADAPTER = "/org/bluez/hci0"


def uuid16(n):
    return "0000%04x-0000-1000-8000-00805f9b34fb" % n


BODY_SENSOR_LOCATION = uuid16(0x2A38)
BATTERY_SERVICE = uuid16(0x180F)
BATTERY_LEVEL = uuid16(0x2A19)
CCC = uuid16(0x2902)

# kind: (service, measurement, appearance)
KINDS = {
    "hr": (0x180D, 0x2A37, 0x0341),  # heart rate belt
    "treadmill": (0x1826, 0x2ACD, 0x0000),
    "bike": (0x1826, 0x2AD2, 0x0000),
    "rower": (0x1826, 0x2AD1, 0x0000),
    "csc": (0x1816, 0x2A5B, 0x0485),  # cycling speed and cadence sensor
    "rsc": (0x1814, 0x2A53, 0x0443),  # running in-shoe sensor
    "power": (0x1818, 0x2A63, 0x0484),  # cycling power sensor
}


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
        self.fake.set_powered(value)

    def set_powered(self, value):
        if value == self._powered:
            return
        self._powered = value
        self.emit_properties_changed({"Powered": value})
        if not value:
            # Powered off: every link drops and discovery ends.
            for strap in self.fake.straps:
                if strap.device.connected:
                    strap.drop_link()
            if self._discovering:
                self.StopDiscovery()

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
    def Connect(self):
        fake = self.strap.fake
        if self.connected:
            return
        if not fake.adapter._powered:
            say("refused", self.strap.address)
            raise DBusError("org.bluez.Error.NotReady", "Resource Not Ready")
        full = fake.max_connections and sum(s.device.connected for s in fake.straps) >= fake.max_connections
        if self.strap.refused or full:
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
        return self.strap.appearance

    @dbus_property(access=PropertyAccess.READ)
    def UUIDs(self) -> "as":  # noqa: F821
        return [self.strap.service_uuid]

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
    def __init__(self, device_path, uuid):
        super().__init__("org.bluez.GattService1")
        self.device_path = device_path
        self.uuid = uuid

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> "s":  # noqa: F821
        return self.uuid

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
    """One sensor: a strap, a gym machine, a speed/cadence or power sensor."""

    def __init__(self, fake, address, name, rssi, kind):
        service_id, measurement, appearance = KINDS[kind]
        self.fake = fake
        self.address = address
        self.name = name
        self.rssi = rssi
        self.kind = kind
        self.appearance = appearance
        self.service_uuid = uuid16(service_id)
        self.refused = False
        self.in_range = True
        self.in_tree = False
        self.path = ADAPTER + "/dev_" + address.replace(":", "_")
        self.device = Device(self)
        service = self.path + "/service000c"
        self.service = (service, Service(self.path, self.service_uuid))
        self.hrm_path = service + "/char000d"
        self.hrm = Characteristic(self, service, uuid16(measurement), ["notify"])
        self.ccc = (self.hrm_path + "/desc000f", Descriptor(self.hrm_path))
        self.extra = []
        if kind == "hr":
            self.extra.append(
                (service + "/char0010", Characteristic(self, service, BODY_SENSOR_LOCATION, ["read"], b"\x01"))
            )
            # A strap's Battery Service (0x180F): Battery Level 0x2A19, 77 %.
            battery = self.path + "/service0020"
            self.extra.append((battery, Service(self.path, BATTERY_SERVICE)))
            self.extra.append((battery + "/char0021", Characteristic(self, battery, BATTERY_LEVEL, ["read"], bytes([77]))))

    def objects(self):
        return [(self.path, self.device), self.service, (self.hrm_path, self.hrm), self.ccc] + self.extra

    def drop_link(self):
        if self.hrm.notifying:
            self.hrm.notifying = False
            self.hrm.emit_properties_changed({"Notifying": False})
        self.device.connected = False
        self.device.resolved = False
        self.device.emit_properties_changed({"ServicesResolved": False})
        self.device.emit_properties_changed({"Connected": False})


class Fake:
    def __init__(self, bus, max_connections):
        self.bus = bus
        self.straps = []
        self.filter = {}
        self.discovery_clients = 0
        self.max_connections = max_connections
        self.adapter = Adapter(self)

    def set_powered(self, value):
        self.adapter.set_powered(value)

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
        """Discovery finds every device in range that is not in the tree yet."""
        for strap in self.straps:
            if strap.in_range and not strap.in_tree:
                self.add(strap)

    def add(self, strap):
        strap.in_tree = True
        for path, interface in strap.objects():
            self.bus.export(path, interface)
        for path, interface in strap.objects():
            self.interfaces_added(path, interface)

    def remove(self, strap):
        """BlueZ dropping a device: the link goes, then its objects, deepest first."""
        if strap.device.connected:
            strap.drop_link()
        if not strap.in_tree:
            return
        strap.in_tree = False
        for path, interface in reversed(strap.objects()):
            self.bus.unexport(path, interface)
            self.bus.send(
                Message.new_signal(
                    path="/",
                    interface="org.freedesktop.DBus.ObjectManager",
                    member="InterfacesRemoved",
                    signature="oas",
                    body=[path, [interface.name]],
                )
            )


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


class AnsweredErrors(logging.Filter):
    """dbus-next sends the error a method raises as its answer, as BlueZ would, and also
    logs it with a traceback. These are the answers the fake gives on purpose (a refused
    connection, an adapter off, a removed device: UnknownObject), not faults of the fake."""

    EXPECTED = ("no interfaces at path", "le-connection-abort-by-local", "Resource Not Ready",
                "Not connected", "Operation already in progress")

    def filter(self, record):
        return not any(e in record.getMessage() for e in self.EXPECTED)


async def main(args):
    logging.getLogger().addFilter(AnsweredErrors())
    max_connections = 0
    if args[:1] == ["--max-connections"]:
        max_connections = int(args[1])
        args = args[2:]
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    # dbus-next announces exports itself, from the object's own path; bluetoothd does it
    # from /, which is what clients listen for. Only ours go out.
    bus._emit_interface_added = lambda path, interface: None
    bus._emit_interface_removed = lambda path, interface: None
    fake = Fake(bus, max_connections)
    for i, arg in enumerate(args):
        arg, _, kind = arg.partition("/")
        address, _, name = arg.partition("=")
        kind = kind or "hr"
        fake.straps.append(Strap(fake, address.upper(), name or "%s %s" % (kind.upper(), address[-5:]), -50 - 5 * i, kind))
    bus.export(ADAPTER, fake.adapter)
    await bus.request_name("org.bluez")
    say("ready")
    by_address = {s.address: s for s in fake.straps}
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
        if cmd == "limit":
            fake.max_connections = int(rest[0])
            say("ok")
            continue
        if cmd == "power":
            fake.set_powered(rest[0] == "1")
            await delivered(bus)
            say("powered", rest[0])
            continue
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
        elif cmd == "remove":
            strap.in_range = False
            fake.remove(strap)
            await delivered(bus)
            say("removed", strap.address)
        elif cmd == "add":
            strap.in_range = True
            if fake.discovery_clients:
                fake.discover()
            await delivered(bus)
            say("added", strap.address)
        else:
            say("error", "unknown command", cmd)
    bus.disconnect()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
