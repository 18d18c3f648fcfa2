// The chat page: joins a room through the bundled Starling client and shows what the room says.
import { Starling } from '/starling.js';

const joinForm = document.querySelector('#join');
const sendForm = document.querySelector('#send');
const status = document.querySelector('#status');
const messages = document.querySelector('#messages');

const config = await (await fetch('/config.json')).json();
for (const room of config.rooms) joinForm.room.append(new Option(`#${room}`, room));

const starling = new Starling({ url: `ws://${location.hostname}:${config.wsPort}` });
let current = null; // { room, off }

function setStatus(text, state) {
  status.textContent = text;
  status.dataset.state = state;
}

function show({ name, text, system, at }) {
  const item = document.createElement('li');
  item.title = new Date(at).toLocaleTimeString();
  if (system) {
    item.className = 'system';
    item.textContent = system;
  } else {
    item.className = 'message';
    const who = document.createElement('span');
    who.className = 'name';
    who.textContent = name;
    item.append(who, text); // text nodes: a message is never parsed as HTML
  }
  messages.append(item);
  messages.scrollTop = messages.scrollHeight;
}

joinForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const room = joinForm.room.value;
  try {
    if (starling.state !== 'OPEN') await starling.connect();
    await starling.request('chat.setName', { name: joinForm.name.value }, { throwOnError: true });
    if (current) {
      current.off();
      await starling.unsubscribe(`chat:${current.room}`);
    }
    messages.replaceChildren();
    const off = starling.on(`chat:${room}`, show);
    const joined = await starling.subscribe(`chat:${room}`);
    if (!joined.success) {
      off();
      throw new Error(joined.error);
    }
    current = { room, off };
    sendForm.text.disabled = sendForm.querySelector('button').disabled = false;
    setStatus(`In #${room} as ${joinForm.name.value.trim()}.`, 'joined');
    sendForm.text.focus();
  } catch (error) {
    setStatus(`Could not join: ${error.message}`, 'error');
  }
});

sendForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const text = sendForm.text.value;
  if (!current || text.trim() === '') return;
  const response = await starling.request('chat.send', { room: current.room, text });
  if (response.isError()) setStatus(`Not sent: ${response.error.message}`, 'error');
  else sendForm.text.value = '';
});

starling.events.on('close', () => setStatus('Disconnected from the server.', 'error'));
