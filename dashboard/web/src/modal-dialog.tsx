/**
 * A modal `<dialog>`: opened with `showModal()` when mounted (the browser keeps focus in it and
 * turns Escape into `onClose`), closed by unmounting, which gives focus back to what had it.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';

export interface ModalDialogProps {
  labelledBy: string;
  describedBy?: string;
  class?: string;
  testId?: string;
  /** Escape, or a close button: the owner unmounts the dialog. */
  onClose: () => void;
  children: ComponentChildren;
}

export function ModalDialog({ labelledBy, describedBy, class: className, testId, onClose, children }: ModalDialogProps) {
  const dialog = useRef<HTMLDialogElement>(null);
  const close = useRef(onClose);
  close.current = onClose;

  useEffect(() => {
    const element = dialog.current;
    if (!element) return;
    // The browser gives focus back on close() only while the dialog is in the document: by the
    // time an unmount closes it, it may not be, so the opener is remembered here.
    const opener = document.activeElement;
    if (!element.open) element.showModal();
    const cancel = (event: Event) => {
      event.preventDefault();
      close.current();
    };
    element.addEventListener('cancel', cancel);
    return () => {
      element.removeEventListener('cancel', cancel);
      if (element.open) element.close();
      if (opener instanceof HTMLElement && opener.isConnected) opener.focus();
    };
  }, []);

  return (
    <dialog ref={dialog} class={`modal ${className ?? ''}`} aria-labelledby={labelledBy} aria-describedby={describedBy} data-testid={testId}>
      {children}
    </dialog>
  );
}
