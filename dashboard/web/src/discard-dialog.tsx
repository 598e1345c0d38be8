/** "Discard this dead letter?": the only action that deletes, so it asks first (Keep it has focus). */
import { ModalDialog } from './modal-dialog.tsx';

export interface DiscardDialogProps {
  id: string;
  busy: boolean;
  onConfirm: (id: string) => void;
  onCancel: () => void;
}

export function DiscardDialog({ id, busy, onConfirm, onCancel }: DiscardDialogProps) {
  return (
    <ModalDialog labelledBy="discard-title" describedBy="discard-description" class="confirm-dialog" testId="discard-dialog" onClose={onCancel}>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          onConfirm(id);
        }}
      >
        <h2 id="discard-title">Discard this dead letter?</h2>
        <p id="discard-description">
          <code>{id}</code> will be deleted for good: it cannot be redriven afterwards. The action is recorded in the activity list.
        </p>
        <div class="dialog-actions">
          <button type="button" autofocus onClick={onCancel} data-testid="cancel-discard">
            Keep it
          </button>
          <button type="submit" class="danger" disabled={busy} data-testid="confirm-discard">
            Discard
          </button>
        </div>
      </form>
    </ModalDialog>
  );
}
